"""A Django project served on Lambda through apig-wsgi, as deployed unmodified."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from apig_wsgi import make_lambda_handler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
lambda_handler = make_lambda_handler(application)
