from django.urls import path

from . import views

app_name = "annotations"
urlpatterns = [
    path("collections/<int:collection_id>/", views.collection_detail, name="collection"),
    path("artworks/<int:artwork_id>/", views.artwork_detail, name="artwork"),
    path("artworks/<int:artwork_id>/thumbnail", views.artwork_thumbnail, name="thumbnail"),
    path("artworks/<int:artwork_id>/link", views.link_artworks, name="link"),
    path("connections/export.csv", views.export_connections_csv, name="export_connections"),
    path("connections/export.jsonld", views.export_connections_jsonld, name="export_connections_jsonld"),
    path("collections/import-iiif", views.start_iiif_import, name="start_iiif_import"),
    path("files/<path:relpath>", views.data_file, name="file"),
    # IIIF: Presentation 3.0 manifests and a level-0 Image API 3.0 service per artwork.
    path("iiif/artworks/<int:artwork_id>/manifest.json", views.iiif_artwork_manifest, name="iiif_manifest"),
    path(
        "iiif/artworks/<int:artwork_id>/component.json", views.iiif_component_manifest, name="iiif_component"
    ),
    path("iiif/artworks/<int:artwork_id>/canvas", views.iiif_canvas, name="iiif_canvas"),
    path("iiif/viewer/", views.iiif_viewer, name="iiif_viewer"),
    path("iiif/images/<int:artwork_id>", views.iiif_service, name="iiif_service"),
    path("iiif/images/<int:artwork_id>/info.json", views.iiif_image_info, name="iiif_info"),
    path(
        "iiif/images/<int:artwork_id>/<str:region>/<str:size>/<str:rotation>/<str:quality>.<str:fmt>",
        views.iiif_image,
        name="iiif_image",
    ),
]
