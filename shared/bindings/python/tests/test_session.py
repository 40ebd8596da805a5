"""kiln.session.Session: job updates delivered by pump() on the calling thread."""

import threading
import time
import unittest

import numpy as np

import kiln
from kiln.session import Session
from daemon_process import DaemonProcess


class SessionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = DaemonProcess("se")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def setUp(self):
        self.session = Session("session-test", socket=self.daemon.socket, autostart=False)
        self.session.ensure_connected()

    def tearDown(self):
        self.session.close()

    def pump_until(self, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self.session.queue.wait(0.05)
            self.session.pump()
        return predicate()

    def test_watch_delivers_progress_previews_and_the_end_on_the_pumping_thread(self):
        seen = []
        threads = set()
        previews = []

        def on_update(progress):
            threads.add(threading.get_ident())
            seen.append(progress)
            if progress.preview:
                # Previews are shared by every subscriber: read, never take.
                img = self.session.read_image(progress.preview)
                previews.append(np.asarray(img).shape)

        record = self.session.call("jobs.simulate", {"steps": 6, "step_ms": 20, "preview_every": 2})
        self.session.watch(record["id"], on_update)
        self.assertTrue(self.pump_until(lambda: seen and seen[-1].finished))
        self.assertEqual(threads, {threading.get_ident()})
        self.assertEqual(seen[-1].state, "done")
        self.assertEqual(seen[-1].step, 6)
        self.assertTrue(previews, "preview images arrive with progress")
        self.assertEqual(len([p for p in seen if p.finished]), 1, "the end is delivered once")

    def test_watching_a_job_that_already_finished_still_reports_its_end(self):
        record = self.session.call("jobs.simulate", {"steps": 1, "step_ms": 0, "priority": "interactive"})
        final = self.session.wait(record["id"], timeout=20)
        self.assertEqual(final["state"], "done")
        seen = []
        self.session.watch(record["id"], seen.append)
        self.assertTrue(self.pump_until(lambda: seen))
        self.assertEqual(seen[0].state, "done")

    def test_cancel_and_async_replies_on_the_pumping_thread(self):
        record = self.session.call("jobs.simulate", {"steps": 1000, "step_ms": 20})
        seen = []
        self.session.watch(record["id"], seen.append)
        replies = []
        self.session.call_async("jobs.cancel", {"id": record["id"]},
                                lambda result, error: replies.append((threading.get_ident(), result, error)))
        self.assertTrue(self.pump_until(lambda: replies and seen and seen[-1].finished))
        self.assertEqual(replies[0][0], threading.get_ident())
        self.assertIsNone(replies[0][2])
        self.assertEqual(seen[-1].state, "cancelled")

    def test_a_restarted_daemon_is_reconnected_on_the_next_call(self):
        with DaemonProcess("sr") as d:
            s = Session("restart-test", socket=d.socket, autostart=False)
            s.ensure_connected()
            lost = []
            s.add_disconnect_listener(lost.append)
            d.kill9()
            deadline = time.monotonic() + 10
            while not lost and time.monotonic() < deadline:
                s.queue.wait(0.1)
                s.pump()
            self.assertTrue(lost)
            d.start()
            record = s.call("jobs.simulate", {"steps": 2, "step_ms": 1})
            self.assertEqual(s.wait(record["id"], timeout=20)["state"], "done")
            s.close()


if __name__ == "__main__":
    unittest.main()
