from django.apps import AppConfig


class ClientsConfig(AppConfig):
    name = "compliance.clients"
    label = "clients"
