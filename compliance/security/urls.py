"""Pages (included by config/urls.py at the site root)."""

from django.urls import path

from . import views

app_name = "security"

urlpatterns = [
    path("accounts/login/", views.sign_in, name="sign_in"),
    path("accounts/logout/", views.sign_out, name="sign_out"),
]
