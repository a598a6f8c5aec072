"""Run a command with 127.0.0.1:PORT relayed to a unix socket (stdlib only; runs INSIDE the sandbox).

    python3 forwarder.py PORT /path/to/gateway.sock -- claude -p ...

The sandbox has no network at all, by design. A teacher CLI still has to reach the recording
gateway, so the gateway listens on a unix socket whose directory is bind-mounted into the
sandbox, and this script listens on the sandbox's private loopback (its own network
namespace, so the port cannot clash with anything) and relays each connection to that
socket. The listener is bound before the command starts, so the CLI's first request cannot
race it. The relay runs in a forked child; the parent execs the command, so the command's
exit status is the run's, and when it exits the sandbox's pid namespace takes the relay down.
"""
import os
import socket
import sys
import threading


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _relay(conn: socket.socket, uds_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(uds_path)
    except OSError as e:
        sys.stderr.write(f"forwarder: cannot reach the gateway socket {uds_path}: {e}\n")
        conn.close()
        upstream.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
    back.start()
    _pump(conn, upstream)
    back.join()
    conn.close()
    upstream.close()


def serve(listener: socket.socket, uds_path: str) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_relay, args=(conn, uds_path), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: forwarder.py PORT UDS_PATH -- COMMAND...\n")
        return 2
    port, uds_path, command = int(argv[0]), argv[1], argv[3:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    if os.fork() == 0:  # the relay
        try:
            serve(listener, uds_path)
        finally:
            os._exit(0)
    listener.close()
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
