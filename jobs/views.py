from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from workbench import params

from .models import Job, JobState


def can_cancel(user, job: Job) -> bool:
    return user.is_staff or (job.created_by_id is not None and job.created_by_id == user.pk)


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    Job.objects.reap_dead()
    jobs = Job.objects.select_related("created_by")
    state = request.GET.get("state")
    if state:
        jobs = jobs.filter(state=params.choice(state, "state", JobState.values))
    page = Paginator(jobs, 50).get_page(request.GET.get("page"))
    return render(request, "jobs/list.html", {"page": page, "state": state})


@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    Job.objects.filter(pk=job_id).reap_dead()
    job = get_object_or_404(Job.objects.select_related("created_by"), pk=job_id)
    # The step a pipeline job started when it succeeded (train → cluster → map), so the page leads on.
    context = {"job": job, "next_job": job.next_job_summary(), "can_cancel": can_cancel(request.user, job)}
    return render(request, "jobs/detail.html", context)


@login_required
def job_json(request: HttpRequest, job_id: int) -> JsonResponse:
    Job.objects.filter(pk=job_id).reap_dead()
    job = get_object_or_404(Job, pk=job_id)
    return JsonResponse(job.as_progress_dict())


@login_required
def active_jobs_json(request: HttpRequest) -> JsonResponse:
    Job.objects.reap_dead()
    return JsonResponse({"jobs": [job.as_progress_dict() for job in Job.objects.active()[:50]]})


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    if not can_cancel(request.user, job):
        raise PermissionDenied("Only the person who started a job, or staff, can cancel it.")
    if job.request_cancel():
        messages.info(request, f"Cancellation of job #{job.pk} requested.")
    else:
        messages.warning(request, f"Job #{job.pk} has already ended.")
    return redirect("jobs:detail", job_id=job.pk)
