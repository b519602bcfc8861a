"""Orders: a Chalice app; Chalice routes on resourcePath and pathParameters."""

import utils
from chalice import Chalice, NotFoundError
from chalicelib import store

app = Chalice(app_name="orders")


@app.route("/orders")
def list_orders():
    return {"orders": sorted(store.ORDERS), "utils": utils.WHO}


@app.route("/orders/{order_id}")
def get_order(order_id):
    if order_id not in store.ORDERS:
        raise NotFoundError(f"no order {order_id}")
    request = app.current_request
    return {"id": order_id, "item": store.ORDERS[order_id], "path": request.path}
