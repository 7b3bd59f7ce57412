from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.collections import collections_option
from jobs.cli import add_worker_arguments, run_worker_job
from jobs.models import JobState
from training.models import ModelVersion, resolve_version

from ...algorithms import ALGORITHMS, ClusteringParams


class Command(BaseCommand):
    help = (
        "Cluster the signatures of a model version (OPTICS by default, with the thesis parameters: cosine, "
        "max_eps 0.13, min_samples 2, xi 0.05), turn the clusters into review proposals and score the run "
        "against the known val/test components. Queued for a worker; --wait follows it and prints the "
        "metrics. --preview only counts clusters and noise for the given parameters, storing nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default="active", help="VERSION (v3 or 3), active or latest")
        parser.add_argument("--algorithm", choices=ALGORITHMS, default="optics")
        parser.add_argument(
            "--max-eps", type=float, dest="max_eps", help="cosine distance (OPTICS, DBSCAN eps)"
        )
        parser.add_argument("--min-samples", type=int, dest="min_samples")
        parser.add_argument("--xi", type=float, help="OPTICS steepness threshold")
        parser.add_argument("--min-cluster-size", type=int, dest="min_cluster_size")
        parser.add_argument("--pca", type=int, help="reduce the signatures to this many dimensions first")
        parser.add_argument(
            "--verify-top",
            type=int,
            dest="verify_top",
            help="spatially verify each signature's N nearest neighbours and cluster verified pairs "
            "together (OPTICS, DBSCAN; default 10, 0: off)",
        )
        parser.add_argument("--collection", action="append", dest="collections")
        parser.add_argument("--preview", action="store_true", help="print counts only; store nothing")
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        collections = collections_option(options["collections"])
        try:
            params = ClusteringParams.from_values(options)
            params.resolved()
            version = resolve_version(options["model"])
        except (ValueError, ModelVersion.DoesNotExist) as exc:
            raise CommandError(str(exc)) from None
        if options["preview"]:
            self.preview(version, params, collections or None)
            return
        job_params = {
            "model": str(version.number),
            "algorithm": params.algorithm,
            "collections": collections,
            **params.given(),
        }
        job = run_worker_job(self, "cluster", job_params, options)
        if job.state == JobState.SUCCEEDED:
            from ...models import ClusteringRun
            from ...reports import metrics_table

            self.stdout.write("\n" + metrics_table(ClusteringRun.objects.get(pk=job.result["run"])))

    def preview(self, version, params, collections) -> None:
        from training.signatures import MissingSignatures

        from ...runs import preview_clustering

        try:
            result = preview_clustering(version, params, collections)
        except (MissingSignatures, ValueError) as exc:  # ValueError: a parameter too large for the data
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{params.algorithm} {params.resolved().as_dict()} on {version.label}: "
            f"{result.cluster_count} clusters, {result.noise_share:.1%} noise, largest {result.largest} "
            f"({result.seconds:.2f} s)"
        )
        self.stdout.write("sizes " + ", ".join(f"{k}: {v}" for k, v in result.size_histogram.items()))
        if result.verification:
            from ...reports import verified_pairs

            self.stdout.write(verified_pairs(result.verification))
