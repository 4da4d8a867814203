"""The ICDAR 13/15 views: word recognition, text localization and text segmentation (shared
helpers in formats/common/text_regions.py)."""
