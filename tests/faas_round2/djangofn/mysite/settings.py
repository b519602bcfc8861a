SECRET_KEY = "flexilib-test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = ["shop"]
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True
