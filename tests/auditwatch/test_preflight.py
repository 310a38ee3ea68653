"""The listening socket the commands bind (`auditwatch.preflight.bind_listener`) before handing it to uvicorn."""

from __future__ import annotations

import asyncio
import socket

from auditwatch.preflight import bind_listener


def test_connections_accepted_on_the_listener_send_without_nagle_delay() -> None:
    # asyncio sets TCP_NODELAY only on sockets that say IPPROTO_TCP: with it unset, a response's body waited behind
    # its headers for the client's delayed ACK, ~40 ms per webhook POST.
    async def nodelay_of_accepted() -> int:
        listener = bind_listener("127.0.0.1", 0)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connection(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=listener)
        try:
            _reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            value = await asyncio.wait_for(accepted, 10)
            writer.close()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(nodelay_of_accepted()) != 0
