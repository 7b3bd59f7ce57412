from django.urls import path

from . import views

app_name = "clustering"
urlpatterns = [
    path("rounds/cluster", views.start_clustering, name="start_clustering"),
    path("runs/<int:run_id>/proposals.json", views.run_proposals_json, name="run_proposals_json"),
    path("map/", views.map_page, name="map"),
    path("map/<int:number>.json", views.map_json, name="map_json"),
    path("map/lasso", views.lasso_proposal, name="lasso"),
    path("iiif/proposals/<int:proposal_id>/manifest.json", views.proposal_manifest, name="iiif_proposal"),
]
