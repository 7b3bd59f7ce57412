from django.urls import path

from . import views

app_name = "review"
urlpatterns = [
    path("review/", views.queue, name="queue"),
    path("review/<int:proposal_id>/", views.review, name="review"),
    path("review/<int:proposal_id>/decide", views.decide_view, name="decide"),
    path("review/<int:proposal_id>/verification.json", views.proposal_verification, name="verification"),
    path("review/undo", views.undo_view, name="undo"),
    path("review/decisions.json", views.decisions_json, name="decisions_json"),
    path("review/simulations/", views.simulations, name="simulations"),
    path("review/simulations/start", views.start_simulation, name="start_simulation"),
    path("review/simulations/<int:simulation_id>/", views.simulation_detail, name="simulation"),
    path("review/simulations/<int:simulation_id>.json", views.simulation_json, name="simulation_json"),
]
