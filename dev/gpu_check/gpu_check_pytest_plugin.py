"""pytest plugin of the GPU check: one JSON line per finished test, written as it finishes.

``pytest -p gpu_check_pytest_plugin`` with ``SAM_MTP_TEST_LOG=<file>``: each line is
``{"nodeid", "outcome", "duration_s", "reason"}`` (outcome: passed, failed, skipped, error; reason: the skip
reason or the first line of the failure), and one ``{"collected": [...]}`` line. Lines are flushed one by one, so
a test phase stopped by its time budget still reports every test that finished.

A test that fails because it reached one of the GPU check's import-time stand-ins (a package absent on the
machine, dev/gpu_check/stand_ins/) is reported as skipped, with the stand-in's message as the reason: the machine
cannot run it, which says nothing about the code.
"""
import json
import os

import pytest

STAND_IN_MARK = 'the GPU check replaced it by an import-time stand-in'


def _reason(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):  # (file, line, 'Skipped: reason')
        return str(report.longrepr[2]).replace('Skipped: ', '', 1)
    if report.failed:
        crash = getattr(report.longrepr, 'reprcrash', None)
        return crash.message.splitlines()[0] if crash is not None else str(report.longrepr).splitlines()[-1]
    return ''


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None and STAND_IN_MARK in str(call.excinfo.value):
        reason = str(call.excinfo.value).splitlines()[0]
        report.outcome = 'skipped'
        report.longrepr = (str(item.path), item.location[1] or 0, f'Skipped: absent on this machine: {reason}')


def pytest_runtest_logreport(report) -> None:
    path = os.environ.get('SAM_MTP_TEST_LOG')
    if not path:
        return
    if report.when == 'call':
        outcome = report.outcome
    elif report.outcome == 'skipped' and report.when == 'setup':  # skip marks and pytest.skip in fixtures
        outcome = 'skipped'
    elif report.outcome == 'failed':  # a fixture or teardown failed
        outcome = 'error'
    else:
        return
    line = dict(nodeid=report.nodeid, outcome=outcome, duration_s=round(report.duration, 3),
                reason=_reason(report), when=report.when)
    with open(path, 'a') as f:
        f.write(json.dumps(line) + '\n')


def pytest_collectreport(report) -> None:
    """A test file that cannot be imported (a missing package) is an error of that file."""
    path = os.environ.get('SAM_MTP_TEST_LOG')
    if not path or not report.failed:
        return
    message = str(report.longrepr).strip().splitlines()
    line = dict(nodeid=report.nodeid, outcome='error', duration_s=0.0, reason=message[-1] if message else '',
                when='collect')
    with open(path, 'a') as f:
        f.write(json.dumps(line) + '\n')


def pytest_collection_finish(session) -> None:
    """The selected tests, so that tests a stopped run never reached are reported as not run."""
    path = os.environ.get('SAM_MTP_TEST_LOG')
    if path:
        with open(path, 'a') as f:
            f.write(json.dumps(dict(collected=[item.nodeid for item in session.items])) + '\n')
