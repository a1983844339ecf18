import os

from django.core.asgi import get_asgi_application

from config.startup import freeze_what_is_loaded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
application = get_asgi_application()

freeze_what_is_loaded()
