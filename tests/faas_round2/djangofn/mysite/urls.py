from django.urls import path
from shop import views

urlpatterns = [path("shop/items/<int:item_id>", views.item)]
