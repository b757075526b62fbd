"""Parts of the SingleImageRecon module's GUI, one controller a file, each bound to widgets of
``Resources/UI/SingleImageRecon.ui`` that the module file hands it (``self.ui``) and calling
the module's Logic (``self.logic``).

Unlike ``SingleImageReconLib`` these need Slicer's application. The shared pieces (following
a job, path fields, installing packages, the views) are ``SyntheticDataGenWidgets``'.
``Testing/test_module_bindings.py`` checks their uses of the .ui and of the Logic as it checks
the module file's.
"""
