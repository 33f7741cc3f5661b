"""The HTTP servers' bounds on one client: head size, head and body time, connection slots (real sockets)."""

from __future__ import annotations

import socket
import time

from tests.serving.conftest import LIMITS, Served, read_all, read_response, status_of


def get(path: str, *headers: str, keep_alive: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *headers]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def closed_by_server(sock: socket.socket, attempts: int = 50) -> bool:
    """Whether writing to ``sock`` fails within ``attempts`` tries: the server closed its end entirely."""
    for _ in range(attempts):
        try:
            sock.send(b"\r\n")
        except OSError:
            return True
        time.sleep(0.2)
    return False


def trickle(served: Served, head: bytes, drip: bytes, timeout: float) -> bytes:
    """Send ``head``, then ``drip`` 50 times a fifth of ``timeout`` apart (or until refused); what was answered."""
    with served.connect() as sock:
        sock.sendall(head)
        try:
            for _ in range(50):
                time.sleep(timeout / 5)
                sock.sendall(drip)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_all(sock)


def test_a_request_head_over_the_bound_is_answered_431_and_closed(serve):
    served = serve()
    with served.connect() as sock:
        sock.sendall(get("/ok", "Authorization: Bearer " + "x" * LIMITS.max_header_bytes))
        response = read_all(sock)
    assert status_of(response) == 431
    assert b"connection: close" in response


def test_a_huge_header_trickled_in_is_cut_off_at_the_bound(serve):
    served = serve()
    with served.connect() as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer ")
        sent = 0
        try:
            while sent < 64 * LIMITS.max_header_bytes:  # far past the bound: the server stops reading first
                sock.sendall(b"x" * 1024)
                sent += 1024
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = read_all(sock)
    assert response == b"" or status_of(response) == 431
    assert sent < 64 * LIMITS.max_header_bytes or status_of(response) == 431


def test_a_long_url_counts_against_the_bound(serve):
    served = serve()
    with served.connect() as sock:
        sock.sendall(get("/ok?q=" + "a" * LIMITS.max_header_bytes))
        assert status_of(read_all(sock)) == 431


def test_a_head_within_the_bound_is_served_even_when_its_body_arrives_with_it(serve):
    served = serve()
    body = b"b" * (4 * LIMITS.max_header_bytes)
    head = f"POST /echo HTTP/1.1\r\nHost: test\r\nX-Pad: {'p' * 3000}\r\nContent-Length: {len(body)}\r\n"
    with served.connect() as sock:
        sock.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
        response = read_all(sock)
    assert status_of(response) == 200
    assert response.endswith(str(len(body)).encode())


def test_keep_alive_and_pipelined_requests_each_get_a_fresh_head_bound(serve):
    served = serve()
    pad = "X-Pad: " + "p" * (LIMITS.max_header_bytes // 2)
    with served.connect() as sock:
        for _ in range(3):
            sock.sendall(get("/ok", pad, keep_alive=True))
            assert status_of(read_response(sock)) == 200
        sock.sendall(get("/ok", pad, keep_alive=True) * 3 + get("/ok", pad))
        responses = read_all(sock)
    assert responses.count(b"HTTP/1.1 200 OK") == 4


def test_a_client_that_trickles_its_head_gets_408_and_is_closed(serve):
    served = serve()
    # One header line at a time, each well within the bound, never finishing.
    response = trickle(served, b"GET /ok HTTP/1.1\r\nHost: test\r\n", b"X-Slow: 1\r\n", LIMITS.header_timeout_seconds)
    assert response == b"" or status_of(response) == 408


def test_a_connection_that_sends_nothing_is_closed(serve):
    served = serve()
    with served.connect() as sock:
        response = read_all(sock)
    assert status_of(response) == 408


def test_a_client_that_trickles_its_body_is_cut_off(serve):
    served = serve()
    head = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n"
    response = trickle(served, head, b"b", LIMITS.body_timeout_seconds)
    assert response == b"" or status_of(response) == 408


def test_at_the_connection_bound_the_longest_idle_connection_makes_room(serve):
    served = serve(max_connections=4, header_timeout_seconds=30)
    idle = [served.connect() for _ in range(4)]
    for sock in idle:
        sock.sendall(b"GET /ok HTTP/1.1\r\n")  # started heads, never finished
    time.sleep(0.2)  # let the server accept them in order
    with served.connect() as sock:
        sock.sendall(get("/ok"))
        assert status_of(read_all(sock)) == 200
    assert read_all(idle[0]) == b""  # the oldest was closed to admit the new client
    for sock in idle:
        sock.close()


def test_when_every_connection_is_busy_a_new_one_is_answered_503(serve):
    served = serve(max_connections=2, body_timeout_seconds=30)
    busy = [served.connect() for _ in range(2)]
    for sock in busy:
        sock.sendall(get("/block"))
    time.sleep(0.2)
    with served.connect() as sock:
        refused = read_all(sock)
        assert closed_by_server(sock)  # not only half-closed: the refused connection does not linger on
    served.release()
    assert status_of(refused) == 503
    for sock in busy:
        assert status_of(read_all(sock)) == 200
        sock.close()


def test_a_refused_client_still_reads_its_answer_while_it_keeps_sending(serve):
    served = serve()
    with served.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.sendall(get("/ok", "X-Big: " + "x" * (8 * LIMITS.max_header_bytes)))
        assert status_of(read_all(sock)) == 431
