"""Parts of the SyntheticDataGen module's GUI, one controller a file, each bound to widgets of
``Resources/UI/SyntheticDataGen.ui`` that the module file hands it (``self.ui``).

Unlike ``SyntheticDataGenLib`` these need Slicer's application (Qt widgets, timers, the
PyTorch extension). SingleImageRecon reuses the shared ones: ``job_follower``,
``path_fields``, ``python_packages``, ``views`` and ``module_paths``.
``Testing/test_module_bindings.py`` checks their widget uses against the .ui as it checks the
module file's.
"""
