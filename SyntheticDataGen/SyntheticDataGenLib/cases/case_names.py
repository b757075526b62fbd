"""What a case is called: the words that name no case, and are passed over for the folder above.

Kept apart (no imports) because ``xrecon``'s argument parsing reads it, and ``--help`` must not
wait for SimpleITK or torch.
"""

#: File and folder names that ``xrecon generate`` would not name a case after (it takes the
#: name of the folder holding them instead): thorax-dicom-totalseg/dicom is the thorax case.
GENERIC_CASE_NAMES = ("ct", "image", "images", "volume", "inputs", "dicom", "series")
