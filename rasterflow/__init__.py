"""rasterflow: streaming image pipelines for FPGAs, bit-exact with OpenCV and TFLite."""
__version__ = "0.1.0"
