from django.urls import path

from . import views

app_name = "clustering"
urlpatterns = [
    path("review/", views.queue, name="queue"),
    path("review/<int:proposal_id>/", views.review, name="review"),
    path("review/<int:proposal_id>/decide", views.decide_view, name="decide"),
    path("review/undo", views.undo_view, name="undo"),
    path("review/decisions.json", views.decisions_json, name="decisions_json"),
    path("rounds/", views.rounds, name="rounds"),
    path("rounds/start", views.start_round, name="start_round"),
    path("rounds/cluster", views.start_clustering, name="start_clustering"),
    path("versions/<int:number>/promote", views.promote, name="promote"),
    path("runs/<int:run_id>/proposals.json", views.run_proposals_json, name="run_proposals_json"),
    path("map/", views.map_page, name="map"),
    path("map/<int:number>.json", views.map_json, name="map_json"),
    path("map/lasso", views.lasso_proposal, name="lasso"),
]
