"""Executed as pid 1 of every run container by the image's python (-I -S). Copies at most
CAP bytes of each of the child's streams to its own stdout/stderr (+ TRUNCATION_MARKER),
drains and drops the rest, reaps orphans, and ends stderr with a one-line status trailer.
"""
import fcntl, json, os, resource, select, sys, time

def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""

def _counter(text, key):
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return None

def main():
    try:  # non-dumpable: the sandboxed code (same uid) cannot open /proc/1/fd/1 and bypass the cap
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except Exception:
        pass
    cap = int(sys.argv[1])
    marker = bytes.fromhex(sys.argv[2])
    magic = bytes.fromhex(sys.argv[3])
    argv = sys.argv[5:]
    pipes = []
    for _ in range(2):
        r, w = os.pipe()
        try:
            fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        pipes.append((r, w))
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.dup2(pipes[0][1], 1)
            os.dup2(pipes[1][1], 2)
            for r, w in pipes:
                os.close(r)
                os.close(w)
            os.execvp(argv[0], argv)
        except FileNotFoundError as exc:
            os.write(2, ("sandbox: %s: %s\n" % (argv[0], exc.strerror)).encode())
            os._exit(127)
        except BaseException as exc:
            os.write(2, ("sandbox: cannot execute %s: %s\n" % (argv[0], exc)).encode())
            os._exit(126)
    for r, w in pipes:
        os.close(w)
    out = {pipes[0][0]: [1, 0, False], pipes[1][0]: [2, 0, False]}  # fd -> [dst, written, trunc]
    status = None
    grace_until = None
    while out:
        if status is None:
            try:
                p, st = os.waitpid(-1, os.WNOHANG)
                while p:
                    if p == pid:
                        status = st
                        grace_until = time.monotonic() + 1.0
                    p, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pass
        elif time.monotonic() > grace_until:
            break  # a detached grandchild still holds the pipes: stop; the container ends it
        ready, _, _ = select.select(list(out), [], [], 0.05)
        for fd in ready:
            data = os.read(fd, 1 << 20)
            if not data:
                del out[fd]
                continue
            state = out[fd]
            room = cap - state[1]
            if room > 0:
                chunk = data[:room]
                os.write(state[0], chunk)
                state[1] += len(chunk)
            if len(data) > room and not state[2]:
                state[2] = True
                os.write(state[0], marker)
    while status is None:
        try:
            p, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if p == pid:
            status = st
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    code, sig = None, None
    if status is not None:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = 128 + sig
        else:
            code = os.WEXITSTATUS(status)
    trailer = {
        "exit_code": code,
        "signal": sig,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "oom_kill": _counter(_read("/sys/fs/cgroup/memory/memory.oom_control"), "oom_kill"),
        "pids_max_events": _counter(_read("/sys/fs/cgroup/pids/pids.events"), "max"),
    }
    os.write(2, magic + json.dumps(trailer).encode() + b"\n")
    os._exit(code if code is not None else 125)

main()
