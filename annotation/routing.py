"""Websocket routes; live queue and training updates attach here."""

from django.urls import path

from annotation.consumers import ProjectEventsConsumer

websocket_urlpatterns = [
    path("ws/projects/<slug:slug>/", ProjectEventsConsumer.as_asgi()),
]
