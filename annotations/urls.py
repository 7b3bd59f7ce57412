from django.urls import path

from . import views

app_name = "annotations"
urlpatterns = [
    path("collections/<int:collection_id>/", views.collection_detail, name="collection"),
    path("artworks/<int:artwork_id>/", views.artwork_detail, name="artwork"),
    path("artworks/<int:artwork_id>/thumbnail", views.artwork_thumbnail, name="thumbnail"),
    path("artworks/<int:artwork_id>/link", views.link_artworks, name="link"),
    path("connections/export.csv", views.export_connections_csv, name="export_connections"),
    path("files/<path:relpath>", views.data_file, name="file"),
]
