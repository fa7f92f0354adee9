"""Live data for the apps (livedata) (issue 10): the app's own tree as a visual menu
(``tree.py``), deep-link targets (``targets.py``), the live queues followed over AMI
(``queues.py`` model, ``estimate.py`` wait estimator, ``monitor.py`` the AMI shell), their
routes (``http.py``, ``schemas.py``)."""
