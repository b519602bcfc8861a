from flask import Blueprint

bp = Blueprint("web", __name__)
VERSION = "one"  # the reload test rewrites this line


@bp.route("/flask/hello/<name>")
def hello(name):
    return {"hello": name, "version": VERSION, "module": __name__}
