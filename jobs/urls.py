from django.urls import path

from . import views

app_name = "jobs"
urlpatterns = [
    path("", views.job_list, name="list"),
    path("active.json", views.active_jobs_json, name="active_json"),
    path("<int:job_id>/", views.job_detail, name="detail"),
    path("<int:job_id>.json", views.job_json, name="json"),
    path("<int:job_id>/cancel", views.job_cancel, name="cancel"),
]
