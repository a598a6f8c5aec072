"""Warm containers: why and how.

Through Podman's compat API a fresh container per run costs 0.5-1.5 s (create, start, the
``podman container cleanup`` process conmon spawns when it exits, wait, remove) for a command
that itself takes ~0.3 s; ``exec`` into a running container still costs ~150 ms. So a run
goes to a long-lived container instead, and never through the engine API at all:

* pid 1 of a warm container is supervisor.py (this program), running as root with only the
  capabilities it needs to build a per-run sandbox (SYS_ADMIN for namespaces/mounts,
  SETUID/SETGID, SETPCAP to empty the bounding set, KILL to end a run of uid 65534). The host talks to it over a unix socket
  in a private (0700) control directory bind-mounted at CONTROL_DIR: one JSON request per run,
  plus the run's stdout/stderr files passed as descriptors (SCM_RIGHTS).
* The container mounts the *parent* of the workdir (the workspaces root) at /workspace. Each
  run gets new mount and pid namespaces: its own workdir is bind-mounted over /workspace
  (hiding every sibling workspace), fresh tmpfs over /tmp, /var/tmp, /dev/shm and /run (hiding
  the control socket). Its first process then sets the per-run rlimits, empties the capability
  bounding set, becomes uid 65534 with no_new_privs and execs the same output-capping runner a
  cold container uses. That runner is pid 1 of the run's pid namespace: when it ends (or the
  supervisor SIGKILLs it at the deadline) the kernel kills every process left in the namespace,
  setsid() grandchildren and fork bombs included.
* Container-wide limits (memory, pids, CPU, network) are the container's, so a warm container
  serves one run at a time (the host keeps a pool per executor and starts another container for
  a concurrent run); its cgroup counters are reported before each run so the host sees deltas.
  After a run that timed out, hit a limit or left a process behind, the container is discarded.
* A supervisor with no request for IDLE seconds exits, and the container removes itself.
"""
import ctypes, json, os, resource, select, signal, socket, sys, time

CLONE_NEWNS, CLONE_NEWPID = 0x00020000, 0x20000000
MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 32, 4096, 16384, 1 << 18
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
libc = ctypes.CDLL(None, use_errno=True)

def check(ret, what):
    if ret != 0:
        raise OSError(ctypes.get_errno(), "%s: %s" % (what, os.strerror(ctypes.get_errno())))

def mount(src, dst, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    check(libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)), "mount %s" % dst)

def counter(path, key):
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[0] == key:
                    return int(parts[1])
    except (OSError, ValueError):
        pass
    return None

def counters():
    return {"oom_kill": counter("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
            "pids_max_events": counter("/sys/fs/cgroup/pids/pids.events", "max")}

def sandbox_and_exec(req, out_fd, err_fd, report):
    # in the run's new namespaces, still root: only the workdir stays reachable
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    ws = "/workspace/" + req["name"]
    mount(ws, "/workspace", None, MS_BIND)
    mount(None, "/workspace", None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
    for path, size in (("/tmp", req["tmpfs_mb"]), ("/var/tmp", 64), ("/dev/shm", 64), ("/run", 1)):
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=%dm,mode=1777" % size)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.closerange(3, report)  # everything but the (close-on-exec) report pipe
    os.closerange(report + 1, 65536)
    for name, value in req["rlimits"].items():
        soft, hard = value
        resource.setrlimit(getattr(resource, name), (soft, hard))
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")  # under memory pressure the run dies, never the supervisor
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # EINVAL: past the last capability this kernel knows
    os.setgroups([])
    os.setgid(req["gid"])
    os.setuid(req["uid"])  # drops every permitted/effective capability
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.chdir("/workspace")
    os.execve(req["argv"][0], req["argv"], req["env"])

def run_one(req, out_fd, err_fd):
    # A: a helper in the container's pid namespace that unshares, then forks B, the pid 1 of the
    # run's pid namespace; A reports B's pid and wait status on a pipe.
    before = counters()
    r, w = os.pipe()
    t0 = time.monotonic()
    a = os.fork()
    if a == 0:
        try:
            os.close(r)
            check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare")
            b = os.fork()
            if b == 0:
                try:
                    sandbox_and_exec(req, out_fd, err_fd, w)
                except BaseException as exc:
                    os.write(w, ("error %s\n" % exc).encode())
                os._exit(127)
            os.write(w, ("pid %d\n" % b).encode())
            _, status = os.waitpid(b, 0)
            os.write(w, ("status %d\n" % status).encode())
        except BaseException as exc:
            os.write(w, ("error %s\n" % exc).encode())
        os._exit(0)
    os.close(w)
    deadline = t0 + req["timeout"]
    pidfd = os.pidfd_open(a)
    lines, buf, b_pid, timed_out = [], b"", None, False
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(r, select.POLLIN)
    a_done = False
    while not a_done:
        left = deadline - time.monotonic()
        if left <= 0 and not timed_out:
            timed_out = True
            # B is the namespace's init: all of it dies (and if B's pid is not known yet, A
            # dies and the leftover sweep below ends B)
            os.kill(b_pid or a, signal.SIGKILL)
        for fd, _ in poller.poll(max(0, left) * 1000 if not timed_out else 1000):
            if fd == pidfd:
                a_done = True
            else:
                chunk = os.read(r, 4096)
                if not chunk:
                    poller.unregister(r)
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    lines.append(line.decode())
                    if line.startswith(b"pid "):
                        b_pid = int(line[4:])
    duration = time.monotonic() - t0
    os.waitpid(a, 0)
    os.close(pidfd)
    with os.fdopen(r, "rb") as f:
        buf += f.read()
    lines += buf.decode().splitlines()
    status = next((int(l[7:]) for l in lines if l.startswith("status ")), None)
    error = next((l[6:] for l in lines if l.startswith("error ")), None)
    if error is not None and not timed_out:
        status = None  # the sandbox was not set up: the command never ran
    # nothing of the run may outlive it: count (and kill) whatever is left but us
    leftover = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            leftover += 1
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    return {"status": status, "timed_out": timed_out, "duration": duration, "error": error,
            "leftover": leftover, "before": before}

def main():
    sock_path, idle = sys.argv[1], float(sys.argv[2])
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    srv.bind(sock_path + ".new")
    os.chmod(sock_path + ".new", 0o600)
    srv.listen(4)
    os.rename(sock_path + ".new", sock_path)  # appears only once it accepts
    srv.settimeout(idle)
    while True:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            return  # idle: the container ends and removes itself
        conn.settimeout(None)
        fds = []
        try:
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
            while not msg.endswith(b"\n"):
                more = conn.recv(1 << 20)
                if not more:
                    break
                msg += more
            req = json.loads(msg)
            if req.get("op") == "ping":
                reply = {"pong": True}
            elif "/" in req["name"] or req["name"] in ("", ".", "..") or len(fds) != 2:
                reply = {"error": "bad request"}
            else:
                reply = run_one(req, fds[0], fds[1])
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except Exception as exc:
            try:
                conn.sendall(json.dumps({"error": "supervisor: %r" % (exc,)}).encode() + b"\n")
            except OSError:
                pass
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()

main()
