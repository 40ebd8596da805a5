"""kiln.Client against a real kilnd: calls, errors, async replies, notifications, threads."""

import builtins
import os
import sys
import threading
import time
import unittest

import kiln
from daemon_process import DaemonProcess, kilnd_path


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = DaemonProcess("cl")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def setUp(self):
        self.client = self.daemon.client()

    def tearDown(self):
        self.client.close()

    def test_hello_and_status(self):
        info = self.client.server_info
        self.assertEqual(info["protocol"], kiln.PROTOCOL_VERSION)
        self.assertIn("generate", info["methods"])
        self.assertEqual(info["pid"], self.daemon.pid)
        self.assertTrue(self.client.connected)
        self.assertEqual(self.client.socket_path, self.daemon.socket)
        status = self.client.call("status")
        self.assertEqual(status["data_dir"], self.daemon.data_dir)
        self.assertEqual(status["socket"], self.daemon.socket)
        self.assertIsInstance(status["uptime_s"], float)

    def test_json_values_survive_the_trip(self):
        # A job's params come back verbatim in its record: a JSON round trip through kilnd.
        params = {"steps": 3, "step_ms": 0, "priority": "interactive"}
        record = self.client.call("jobs.simulate", params)
        got = self.client.call("jobs.get", {"id": record["id"]})
        self.assertEqual(got["params"]["steps"], 3)
        self.assertIs(type(got["params"]["steps"]), int)
        self.assertEqual(got["params"]["priority"], "interactive")
        self.assertIsNone(got["error"])
        self.assertIsInstance(got["resumable"], bool)

    def test_error_answers_are_rpc_errors_with_code_message_and_name(self):
        with self.assertRaises(kiln.RpcError) as cm:
            self.client.call("no.such.method")
        e = cm.exception
        self.assertEqual(e.code, kiln.METHOD_NOT_FOUND)
        self.assertEqual(e.name, "method_not_found")
        self.assertIn("no.such.method", str(e))
        self.assertEqual(e.message, str(e))

        with self.assertRaises(kiln.RpcError) as cm:
            self.client.call("jobs.simulate", {"steps": "many"})
        self.assertEqual(cm.exception.code, kiln.INVALID_PARAMS)
        self.assertIn("steps", str(cm.exception))

        with self.assertRaises(kiln.RpcError) as cm:
            self.client.call("jobs.get", {"id": "nope"})
        self.assertEqual(cm.exception.code, kiln.NOT_FOUND)
        # The connection stays usable after errors.
        self.assertIn("version", self.client.call("status"))

    def test_values_json_cannot_carry_are_refused_before_sending(self):
        with self.assertRaises(ValueError):
            self.client.call("jobs.simulate", {"steps": float("nan")})
        with self.assertRaises(TypeError):
            self.client.call("jobs.simulate", {1: 2})
        with self.assertRaises(TypeError):
            self.client.call("jobs.simulate", {"steps": object()})
        with self.assertRaises(ValueError):
            self.client.call("jobs.simulate", {"steps": 2 ** 70})
        self.assertIn("version", self.client.call("status"))

    def test_numpy_scalars_are_numbers(self):
        import numpy as np
        record = self.client.call("jobs.simulate", {"steps": np.int64(2), "step_ms": np.uint8(0)})
        self.assertEqual(self.client.call("jobs.get", {"id": record["id"]})["params"]["steps"], 2)

    def test_call_async_with_a_callable_runs_on_the_client_thread(self):
        done = threading.Event()
        seen = {}

        def callback(result, error):
            seen["thread"] = threading.get_ident()
            seen["result"], seen["error"] = result, error
            done.set()

        self.client.call_async("status", {}, callback)
        self.assertTrue(done.wait(10))
        self.assertNotEqual(seen["thread"], threading.get_ident())
        self.assertIsNone(seen["error"])
        self.assertIn("version", seen["result"])

        done.clear()
        self.client.call_async("jobs.get", {"id": "missing"}, callback)
        self.assertTrue(done.wait(10))
        self.assertIsNone(seen["result"])
        self.assertIsInstance(seen["error"], kiln.RpcError)
        self.assertEqual(seen["error"].code, kiln.NOT_FOUND)

    def test_call_async_into_an_event_queue_carries_the_tag(self):
        q = kiln.EventQueue()
        self.client.call_async("status", {}, q, tag=("mine", 1))
        self.client.call_async("jobs.get", {"id": "missing"}, q, tag="second")
        events = []
        deadline = time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            q.wait(1)
            events += q.drain()
        self.assertEqual([e.kind for e in events], ["reply", "reply"])
        by_tag = {e.tag: e for e in events}
        self.assertIn("version", by_tag[("mine", 1)].result)
        self.assertEqual(by_tag[("mine", 1)].method, "status")
        self.assertEqual(by_tag["second"].error.code, kiln.NOT_FOUND)
        self.assertIsNone(by_tag["second"].result)

    def test_notifications_reach_a_queue_in_order_and_stop_when_removed(self):
        q = kiln.EventQueue()
        token = self.client.add_notification_handler(q)
        # Subscribed before the job exists: a 4-step job may be running or done by the time a
        # per-job subscription would arrive.
        self.client.call("jobs.subscribe", {})
        record = self.client.call("jobs.simulate", {"steps": 4, "step_ms": 5})
        states = []
        deadline = time.monotonic() + 20
        while "done" not in states and time.monotonic() < deadline:
            q.wait(1)
            for e in q.drain():
                self.assertEqual(e.kind, "notification")
                if e.params["job"]["id"] != record["id"]:
                    continue  # another test's job
                if e.method == "job.state":
                    states.append(e.params["job"]["state"])
        self.assertEqual(states[-1], "done")
        self.assertIn("running", states)

        self.client.remove_notification_handler(token)
        self.client.call("jobs.subscribe", {})
        self.client.call("jobs.simulate", {"steps": 2, "step_ms": 1})
        time.sleep(0.5)
        self.assertEqual(len(q), 0, "a removed handler gets nothing")

    def test_callable_handlers_run_while_the_main_thread_waits_without_the_gil(self):
        # The handler needs the GIL on the client thread; EventQueue.wait and call release it,
        # so this finishes instead of deadlocking.
        got = threading.Event()
        threads = set()

        def handler(method, params):
            threads.add(threading.get_ident())
            if method == "job.state" and params["job"]["state"] == "done":
                got.set()

        self.client.add_notification_handler(handler)
        self.client.call("jobs.subscribe", {})
        self.client.call("jobs.simulate", {"steps": 3, "step_ms": 5})
        idle = kiln.EventQueue()
        deadline = time.monotonic() + 20
        while not got.is_set() and time.monotonic() < deadline:
            idle.wait(0.2)  # blocks in C++ with the GIL released
        self.assertTrue(got.is_set())
        self.assertNotIn(threading.get_ident(), threads)

    def test_an_exception_in_a_callback_is_reported_and_the_client_goes_on(self):
        reported = []
        old_hook = sys.unraisablehook
        sys.unraisablehook = lambda u: reported.append(u.exc_value)
        try:
            done = threading.Event()

            def bad(result, error):
                done.set()
                raise RuntimeError("callback bug")

            self.client.call_async("status", {}, bad)
            self.assertTrue(done.wait(10))
            deadline = time.monotonic() + 5
            while not reported and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            sys.unraisablehook = old_hook
        self.assertTrue(any("callback bug" in str(e) for e in reported))
        self.assertIn("version", self.client.call("status"))

    def test_event_queue_wait_times_out_and_maxlen_drops_oldest(self):
        q = kiln.EventQueue(maxlen=2)
        t0 = time.monotonic()
        self.assertFalse(q.wait(0.1))
        self.assertGreaterEqual(time.monotonic() - t0, 0.09)
        for _ in range(3):
            self.client.call_async("status", {}, q, tag=_)
        deadline = time.monotonic() + 10
        while q.dropped + len(q) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(q.dropped, 1)
        self.assertEqual([e.tag for e in q.drain()], [1, 2])


class ConnectionTest(unittest.TestCase):
    def test_no_daemon_and_no_autostart_is_a_connection_error(self):
        c = kiln.Client(socket="/tmp/kiln-no-such-dir/kilnd.sock", autostart=False)
        with self.assertRaises(kiln.ConnectionError) as cm:
            c.connect()
        self.assertIsInstance(cm.exception, builtins.ConnectionError)
        self.assertEqual(cm.exception.code, kiln.CONNECTION_LOST)
        self.assertIn("kiln-no-such-dir", str(cm.exception))
        with self.assertRaises(kiln.ConnectionError):
            c.call("status")

    def test_disconnect_is_reported_and_a_restarted_daemon_is_reached_again(self):
        with DaemonProcess("dc") as d:
            c = d.client()
            q = kiln.EventQueue()
            c.on_disconnect(q)
            d.kill9()
            self.assertTrue(q.wait(10))
            (event,) = q.drain()
            self.assertEqual(event.kind, "disconnect")
            self.assertIsInstance(event.params["reason"], str)
            self.assertFalse(c.connected)
            with self.assertRaises(kiln.ConnectionError):
                c.call("status")
            d.start()
            c.connect()
            self.assertEqual(c.server_info["pid"], d.pid)
            c.close()

    def test_autostart_runs_the_daemon_it_is_given(self):
        import shutil
        import tempfile
        root = tempfile.mkdtemp(prefix="kp-as-", dir="/tmp")
        try:
            sock = os.path.join(root, "run", "kilnd.sock")
            data = os.path.join(root, "data")
            c = kiln.Client(socket=sock, data_dir=data, daemon=kilnd_path(), name="autostart-test")
            c.connect()
            status = c.call("status")
            self.assertEqual(status["data_dir"], data)
            pid = status["pid"]
            c.call("shutdown")
            deadline = time.monotonic() + 20
            while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertFalse(os.path.exists("/proc/%d/cmdline" % pid) and
                             b"kilnd" in open("/proc/%d/cmdline" % pid, "rb").read())
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_find_daemon_honours_the_explicit_path_and_kiln_daemon(self):
        self.assertEqual(os.path.realpath(kiln.find_daemon(kilnd_path())), os.path.realpath(kilnd_path()))
        old = os.environ.get("KILN_DAEMON")
        os.environ["KILN_DAEMON"] = kilnd_path()
        try:
            self.assertEqual(os.path.realpath(kiln.find_daemon()), os.path.realpath(kilnd_path()))
        finally:
            if old is None:
                del os.environ["KILN_DAEMON"]
            else:
                os.environ["KILN_DAEMON"] = old


if __name__ == "__main__":
    unittest.main()
