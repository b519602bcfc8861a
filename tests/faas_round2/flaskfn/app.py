"""Flask with its views in a blueprint inside a package, behind apig-wsgi."""

from apig_wsgi import make_lambda_handler
from flask import Flask
from web.views import bp

app = Flask(__name__)
app.register_blueprint(bp)
lambda_handler = make_lambda_handler(app)
