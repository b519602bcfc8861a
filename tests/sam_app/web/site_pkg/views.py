from flask import Blueprint

bp = Blueprint("site", __name__)
VERSION = "one"  # the reload test rewrites this line


@bp.route("/page/<name>")
def page(name):
    return {"page": name, "version": VERSION, "module": __name__}
