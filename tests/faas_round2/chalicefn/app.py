"""A Chalice app: it routes on requestContext.resourcePath and pathParameters."""

from chalice import BadRequestError, Chalice

app = Chalice(app_name="shop")


@app.route("/")
def index():
    return {"index": True}


@app.route("/books/{isbn}")
def book(isbn):
    if not isbn.isdigit():
        raise BadRequestError("isbn must be digits")
    return {"isbn": isbn, "resource": app.current_request.context["resourcePath"]}


@app.route("/books/{isbn}/reviews", methods=["POST"])
def review(isbn):
    return {"isbn": isbn, "review": app.current_request.json_body}
