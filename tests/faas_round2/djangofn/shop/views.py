from django.http import JsonResponse

VERSION = "one"  # the reload test rewrites this line


def item(request, item_id):
    return JsonResponse({"item": item_id, "version": VERSION, "module": __name__})
