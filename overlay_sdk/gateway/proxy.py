"""Pass-through of host traffic: HTTP (bodies and streams unbuffered) and WebSocket.

Small bodies with a known length are read whole and sent in one write (the fast path);
anything else (chunked, server-sent events, large downloads) is relayed chunk by chunk
as it arrives, so a stream reaches the client as the host produces it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from overlay_sdk.gateway.headers import (
    Pairs,
    forward_request_headers,
    forward_response_headers,
)

__all__ = ["Captured", "proxy_http", "proxy_websocket", "wants_websocket"]

WHOLE_BODY = 256 * 1024  # bodies up to this size with a known length are relayed in one piece
_NO_BODY_STATUS = frozenset({204, 304})
_WS_HEADERS = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                         "sec-websocket-protocol", "sec-websocket-accept"})


@dataclass
class Captured:
    """The host's answer to a forked request, kept for telemetry (up to ``limit`` bytes)."""

    limit: int
    status: int = 0
    body: bytes = b""
    content_type: str = ""

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.body)
        if room > 0:
            self.body += chunk[:room]


def wants_websocket(request: web.BaseRequest) -> bool:
    """Whether the request asks for a WebSocket upgrade."""
    return (request.method == "GET"
            and request.headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in request.headers.get("Connection", "").lower())


def _client_ip(request: web.BaseRequest) -> str | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return str(peer[0]) if peer else None


def _outbound_headers(request: web.BaseRequest, extra: Iterable[tuple[str, str]],
                      keep_length: bool, replace: frozenset[str]) -> Pairs:
    return forward_request_headers(
        request.headers, client_ip=_client_ip(request), scheme=request.scheme,
        host=request.host, extra=extra, keep_length=keep_length, replace=replace)


async def proxy_http(
    request: web.BaseRequest, session: aiohttp.ClientSession, base_url: str, *,
    extra: Iterable[tuple[str, str]] = (), body: bytes | None = None,
    capture: Captured | None = None, replace: frozenset[str] = frozenset(),
) -> web.StreamResponse:
    """Forward ``request`` to ``base_url`` + its path and query; relay the answer.

    ``body`` is the request body when the caller already read it; ``capture`` keeps a
    copy of the answer's first bytes; ``replace`` names the client's header fields that
    ``extra`` replaces. Raises aiohttp.ClientError when the host cannot be
    reached (the caller answers 502).
    """
    url = URL(base_url + request.raw_path, encoded=True)
    data: bytes | aiohttp.StreamReader | None
    length = request.content_length
    keep_length = False
    if body is not None:
        data = body
    elif not request.body_exists:
        data = None
    elif length is not None and length <= WHOLE_BODY:
        data = await request.read()
    else:
        data, keep_length = request.content, length is not None
    headers = _outbound_headers(request, extra, keep_length, replace)
    async with session.request(request.method, url, headers=headers, data=data,
                               allow_redirects=False) as upstream:
        size = upstream.content_length
        if capture is not None:
            capture.status = upstream.status
            capture.content_type = upstream.headers.get("Content-Type", "")
        if request.method == "HEAD" or upstream.status in _NO_BODY_STATUS:
            return web.Response(status=upstream.status, reason=upstream.reason,
                                headers=forward_response_headers(upstream.headers,
                                                                 keep_length=True))
        if size is not None and size <= WHOLE_BODY:
            payload = await upstream.read()
            if capture is not None:
                capture.add(payload)
            return web.Response(status=upstream.status, reason=upstream.reason, body=payload,
                                headers=forward_response_headers(upstream.headers))
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason,
            headers=forward_response_headers(upstream.headers, keep_length=size is not None))
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                if capture is not None:
                    capture.add(chunk)
                await response.write(chunk)
        except (TimeoutError, aiohttp.ClientError):
            # the host broke off mid-answer: so does the client's (a status line cannot be
            # sent any more; closing without the last chunk tells the client it is cut)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    """Relay messages from ``source`` to ``sink``. When ``source`` sends a close frame, close
    ``sink`` with its code and reason, then answer ``source`` with the code ``sink`` answered
    (so a close started on either side comes back as the other side replied)."""
    while True:
        message = await source.receive()
        kind = message.type
        if kind == aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif kind == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif kind == aiohttp.WSMsgType.CLOSE:
            code = int(message.data or aiohttp.WSCloseCode.OK)
            reason = (message.extra or "").encode()
            await sink.close(code=code, message=reason)
            await source.close(code=sink.close_code or code, message=reason)
            return
        elif kind in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                      aiohttp.WSMsgType.ERROR):
            return  # the other direction is closing both sides


async def proxy_websocket(
    request: web.BaseRequest, session: aiohttp.ClientSession, base_url: str, *,
    extra: Iterable[tuple[str, str]] = (), replace: frozenset[str] = frozenset(),
) -> web.StreamResponse:
    """Relay a WebSocket session between the client and the host, message by message, with
    the subprotocol the host chose and close codes passed on."""
    url = URL(base_url + request.raw_path, encoded=True)
    url = url.with_scheme("wss" if url.scheme == "https" else "ws")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
               if p.strip()]
    headers = [(name, value) for name, value in _outbound_headers(request, extra, False, replace)
               if name.lower() not in _WS_HEADERS]
    try:
        upstream = await session.ws_connect(url, protocols=offered, headers=headers,
                                            autoclose=False, max_msg_size=0)
    except aiohttp.WSServerHandshakeError as err:
        if err.status == 101:  # it said yes, but not in a way a client can trust
            return web.Response(status=502, text=f"the host's WebSocket handshake was invalid "
                                f"({err.message})\n")
        # the host refused the upgrade: its status and headers (Location, WWW-Authenticate,
        # Sec-WebSocket-Version...) go back to the client
        headers = forward_response_headers(CIMultiDict(err.headers)) if err.headers else []
        return web.Response(status=err.status, headers=headers,
                            text=f"the host refused the WebSocket upgrade: {err.message}\n")
    client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                   autoclose=False, max_msg_size=0)
    try:
        await client.prepare(request)
        pumps = [asyncio.ensure_future(_pump(client, upstream)),
                 asyncio.ensure_future(_pump(upstream, client))]
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(task, 2)
    finally:
        if not upstream.closed:
            await upstream.close()
        if not client.closed:
            await client.close()
    return client
