from django.urls import path

from . import views

app_name = "training"
urlpatterns = [
    path("rounds/", views.rounds, name="rounds"),
    path("rounds/start", views.start_round, name="start_round"),
    path("rounds/label-model", views.start_label_model, name="start_label_model"),
    path("rounds/faces", views.start_face_detection, name="start_face_detection"),
    path("versions/<int:number>/promote", views.promote, name="promote"),
    path("search/", views.search, name="search"),
    path("conditional/", views.conditional, name="conditional"),
    path("conditional.json", views.conditional_json, name="conditional_json"),
    path("artworks/<int:artwork_id>/neighbours", views.artwork_neighbours, name="neighbours"),
    path("artworks/<int:artwork_id>/faces.json", views.artwork_faces, name="faces"),
    path("pair/<int:first_id>/<int:second_id>/", views.pair, name="pair"),
    path("pair/<int:first_id>/<int:second_id>/matches.png", views.pair_matches_image, name="pair_matches"),
]
