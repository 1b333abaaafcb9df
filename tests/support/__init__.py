"""Helpers shared by the tests, one module per subject; test modules and ``conftest.py`` files
import them from here (no test module imports another, conftest files hold fixtures only).

* :mod:`tests.support.alerts` — readings, the pure engine for one patient, patients and a
  stored-reading writer for the alert tests;
* :mod:`tests.support.broker` — gateway logins and the admin view of the project's Mosquitto,
  a private Mosquitto with the project's ACL;
* :mod:`tests.support.db` — reading the test database;
* :mod:`tests.support.emulation` — finding emulated peripherals, collecting notifications;
* :mod:`tests.support.end_to_end` — the fault tests' rig (emulated homes, real gateways,
  ingest as a process) and their counting;
* :mod:`tests.support.fuzz_codecs` — the codec fuzzer (atheris), run as a process;
* :mod:`tests.support.gateway` — gateway configuration files, a stopped gateway's state;
* :mod:`tests.support.homes` — the ingest tests' home (:func:`lab.homes.provision_home`);
* :mod:`tests.support.network` — free ports and TCP proxies that cut or hold back traffic;
* :mod:`tests.support.readings` — readings and gateway messages without a BLE device;
* :mod:`tests.support.timescale` — a private TimescaleDB cluster a test may restart;
* :mod:`tests.support.vectors` — complete values of every codec;
* :mod:`tests.support.waiting` — waiting for state the code under test changes;
* :mod:`tests.support.web` — the app served over HTTP, a logged-in client, the web tests' rows.
"""
