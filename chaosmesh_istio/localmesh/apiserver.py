"""The aiohttp application of the local control plane: routes, auth and error bodies.

It speaks enough of the Kubernetes API for ``networking.istio.io`` VirtualServices and
DestinationRules that the official ``kubernetes`` client and ``kubectl`` work unchanged.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from chaosmesh_istio.errors import MeshError
from chaosmesh_istio.localmesh import authorization, discovery, status
from chaosmesh_istio.localmesh.handlers import Handlers
from chaosmesh_istio.localmesh.store import Store
from chaosmesh_istio.localmesh.switches import Switches

__all__ = ["HANDLERS_KEY", "STORE_KEY", "SWITCHES_KEY", "create_app"]

logger = logging.getLogger("chaostoolkit").getChild("localmesh")

STORE_KEY = web.AppKey("store", Store)
HANDLERS_KEY = web.AppKey("handlers", Handlers)
SWITCHES_KEY = web.AppKey("switches", Switches)

_UNAUTHENTICATED = frozenset({"/healthz", "/readyz", "/livez"})
# kubectl asks for protobuf; an empty body is a valid, empty protobuf OpenAPI document,
# which makes kubectl skip client-side schema validation instead of failing.
_OPENAPI_PROTOBUF = "application/octet-stream"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status_response(error: status.ApiError) -> web.Response:
    return web.Response(
        body=json.dumps(error.status()).encode(),
        status=error.code,
        content_type="application/json",
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a Kubernetes ``Status`` body."""
    try:
        return await handler(request)
    except status.ApiError as exc:
        if exc.code >= 500:
            logger.error("%s %s: %s", request.method, request.path, exc.message)
        return _status_response(exc)
    except web.HTTPNotFound:
        return _status_response(status.path_not_found())
    except web.HTTPMethodNotAllowed:
        return _status_response(status.method_not_allowed())
    except web.HTTPException as exc:
        # e.g. 413 from aiohttp's body size limit: still answer with a Status.
        reason = exc.reason.title().replace(" ", "")
        return _status_response(status.ApiError(exc.status, reason, exc.reason.lower()))
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return _status_response(
            status.ApiError(
                500,
                "InternalError",
                "an error on the server has prevented the "
                "request from succeeding; see the control plane log",
            )
        )


def _auth(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Require the bearer token everywhere except the health endpoints."""
        if request.path not in _UNAUTHENTICATED:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise status.unauthorized()
        return await handler(request)

    return auth


def _static(body: Callable[[], dict[str, Any]]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body())

    return handler


async def _health(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


async def _api(request: web.Request) -> web.StreamResponse:
    return web.json_response(discovery.api_versions(request.host))


async def _group(request: web.Request) -> web.StreamResponse:
    return web.json_response(discovery.api_group())


async def _group_version(request: web.Request) -> web.StreamResponse:
    version = request.match_info["version"]
    if version not in discovery.VERSIONS:
        raise status.path_not_found()
    return web.json_response(discovery.api_resource_list(version))


async def _openapi_v2(request: web.Request) -> web.StreamResponse:
    if "protobuf" in request.headers.get("Accept", ""):
        return web.Response(body=b"", content_type=_OPENAPI_PROTOBUF)
    return web.json_response(discovery.openapi_v2())


async def _on_shutdown(app: web.Application) -> None:
    app[STORE_KEY].close_subscriptions()


def create_app(store: Store, token: str) -> web.Application:
    """Build the application serving ``store``, guarded by bearer ``token``."""
    if not token:
        raise MeshError("the control plane needs a non-empty bearer token")
    switches = Switches()
    handlers = Handlers(store, switches)
    app = web.Application(middlewares=[_errors, _auth(token)], client_max_size=8 * 1024**2)
    app[STORE_KEY] = store
    app[HANDLERS_KEY] = handlers
    app[SWITCHES_KEY] = switches
    switches.install(app)
    app.on_shutdown.append(_on_shutdown)
    group = f"/apis/{discovery.GROUP}"
    collection = group + "/{version}/namespaces/{namespace}/{plural}"
    discovery_routes: list[tuple[str, Handler]] = [
        ("/version", _static(discovery.version_info)),
        ("/api", _api),
        ("/api/v1", _static(discovery.core_resource_list)),
        ("/apis", _static(discovery.api_group_list)),
        (group, _group),
        (group + "/{version}", _group_version),
        (f"/apis/{discovery.AUTHORIZATION_GROUP}", _static(discovery.authorization_group)),
        (
            f"/apis/{discovery.AUTHORIZATION_GROUP}/{discovery.AUTHORIZATION_VERSION}",
            _static(discovery.authorization_resource_list),
        ),
    ]
    # The generated Python client asks for some of these with a trailing slash ("/apis/").
    for path, handler in discovery_routes:
        app.router.add_get(path, handler)
        app.router.add_get(path + "/", handler)
    app.router.add_routes(
        [
            web.get("/healthz", _health),
            web.get("/readyz", _health),
            web.get("/livez", _health),
            web.get("/openapi/v2", _openapi_v2),
            web.post(
                f"/apis/{discovery.AUTHORIZATION_GROUP}/{discovery.AUTHORIZATION_VERSION}/"
                "selfsubjectaccessreviews",
                authorization.create_review,
            ),
            web.get("/api/v1/namespaces", handlers.list_namespaces),
            web.get("/api/v1/namespaces/{namespace}", handlers.get_namespace),
            web.get(group + "/{version}/{plural}", handlers.list_or_watch),
            web.get(collection, handlers.list_or_watch),
            web.post(collection, handlers.create),
            web.delete(collection, handlers.delete_collection),
            web.get(collection + "/{name}", handlers.get),
            web.put(collection + "/{name}", handlers.replace),
            web.patch(collection + "/{name}", handlers.patch),
            web.delete(collection + "/{name}", handlers.delete),
        ]
    )
    return app
