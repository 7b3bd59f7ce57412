"""Clustering parameters refused up front with their valid range (issue #10, item 7): the web form, the
`cluster` command (with --preview) and a queued job, before any neighbour search or scikit-learn call."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from clustering.algorithms import ClusteringParams
from clustering.models import ClusteringRun
from clustering.runs import preview_clustering, run_clustering
from jobs.models import Job, JobState
from jobs.runner import execute
from workbench.roles import CURATORS

from .test_clustering_runs import collection  # noqa: F401 - fixture

BILLION = 1_000_000_000


def curator() -> Client:
    user = User.objects.create_user("cora")
    user.groups.add(Group.objects.get_or_create(name=CURATORS)[0])
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "params,message",
    [
        (ClusteringParams("optics", min_samples=BILLION), "min_samples must be a whole number from 2 to"),
        (ClusteringParams("dbscan", min_samples=BILLION), "min_samples must be a whole number from 2 to"),
        (ClusteringParams("hdbscan", min_samples=BILLION), "min_samples must be a whole number from 1 to"),
        (ClusteringParams("optics", min_cluster_size=BILLION), "min_cluster_size must be a whole number"),
        (ClusteringParams("hdbscan", min_cluster_size=BILLION), "min_cluster_size must be a whole number"),
        (ClusteringParams("optics", pca=BILLION), "pca must be a whole number from 2 to"),
        (ClusteringParams("optics", max_eps=float("nan")), r"max_eps must be a number in \(0, 2\]"),
        (ClusteringParams("optics", xi=float("inf")), r"xi must be a number in \(0, 1\)"),
    ],
)
def test_every_parameter_has_a_range(params, message):
    with pytest.raises(ValueError, match=message):
        params.resolved()


@pytest.mark.parametrize(
    "value,message",
    [("two", "min_samples must be a whole number"), ("²", "whole number"), ("9" * 5000, "whole number")],
)
def test_text_that_is_no_number_is_named(value, message):
    with pytest.raises(ValueError, match=message):
        ClusteringParams.from_values({"min_samples": value})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields,message",
    [
        ({"min_samples": str(BILLION)}, "min_samples must be a whole number from 2 to 10,000"),
        ({"algorithm": "hdbscan", "min_cluster_size": str(BILLION)}, "min_cluster_size must be a whole"),
        ({"min_samples": "9" * 5000}, "min_samples must be a whole number"),
        ({"model": "v99"}, "no model version &#x27;v99&#x27; (known: v0)"),
        ({"model": "nonsense"}, "is not a model version"),
    ],
)
def test_the_web_form_refuses_before_queueing(collection, fields, message):  # noqa: F811
    response = curator().post(reverse("clustering:start_clustering"), fields, follow=True)
    assert response.status_code == 200 and message in response.content.decode()
    assert not Job.objects.filter(kind="cluster").exists()


@pytest.mark.django_db
def test_the_web_form_still_queues_good_parameters(collection):  # noqa: F811
    fields = {"model": "v0", "algorithm": "dbscan", "min_samples": "3"}
    assert curator().post(reverse("clustering:start_clustering"), fields).status_code == 302
    assert Job.objects.get(kind="cluster").params == {"model": "v0", "algorithm": "dbscan", "min_samples": 3}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--min-samples", str(BILLION)], "min_samples must be a whole number from 2 to 10,000"),
        (["--algorithm", "hdbscan", "--min-cluster-size", str(BILLION)], "min_cluster_size must be"),
        (["--min-samples", "21"], "min_samples is 21 but only 20 signatures are clustered"),
        (["--algorithm", "dbscan", "--min-samples", "500"], "only 20 signatures"),
        (["--algorithm", "hdbscan", "--min-cluster-size", "21"], "min_cluster_size is 21 but only 20"),
    ],
)
def test_cluster_preview_refuses_with_a_command_error(collection, arguments, message):  # noqa: F811
    with pytest.raises(CommandError, match=message):
        call_command("cluster", "--preview", *arguments, stdout=io.StringIO())


@pytest.mark.django_db
def test_cluster_preview_takes_the_largest_valid_value(collection):  # noqa: F811
    out = io.StringIO()
    call_command("cluster", "--preview", "--min-samples", "20", stdout=out)
    assert "clusters" in out.getvalue()


@pytest.mark.django_db
def test_runs_check_parameters_against_the_signatures(collection):  # noqa: F811
    with pytest.raises(ValueError, match="min_samples is 21 but only 20 signatures"):
        preview_clustering(collection, ClusteringParams("optics", min_samples=21))
    with pytest.raises(ValueError, match="min_samples is 21 but only 20 signatures"):
        run_clustering(collection, ClusteringParams("dbscan", min_samples=21))
    assert not ClusteringRun.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "params,message",
    [
        ({"algorithm": "optics", "min_samples": BILLION}, "min_samples must be a whole number from 2 to"),
        ({"algorithm": "hdbscan", "min_cluster_size": BILLION}, "min_cluster_size must be a whole number"),
        ({"algorithm": "optics", "min_samples": 21}, "min_samples is 21 but only 20 signatures"),
    ],
)
def test_a_queued_job_with_bad_parameters_fails_with_the_reason(collection, params, message):  # noqa: F811
    job = Job.objects.create(kind="cluster", params={"model": "active", **params})
    execute(job, follow_ups="none")
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error.startswith(message.replace("\\", "")), job.error[:300]
    assert job.message.startswith(f"Failed: {message}")
    assert not ClusteringRun.objects.exists()
