"""A Flask app whose views live in a blueprint inside a package, served with apig-wsgi."""

from apig_wsgi import make_lambda_handler
from flask import Flask
from site_pkg.views import bp

app = Flask(__name__)
app.register_blueprint(bp, url_prefix="/web")
lambda_handler = make_lambda_handler(app)
