from django.urls import path

from . import views

app_name = "training"
urlpatterns = [
    path("search/", views.search, name="search"),
    path("artworks/<int:artwork_id>/neighbours", views.artwork_neighbours, name="neighbours"),
]
