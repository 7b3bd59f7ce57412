from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

handler400 = views.bad_request

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("jobs/", include("jobs.urls")),
    path("", include("annotations.urls")),
    path("", include("review.urls")),
    path("", include("clustering.urls")),
    path("", include("training.urls")),
]
