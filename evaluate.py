#!/usr/bin/env python
"""Measure how well a StyliShi index finds the right products (same as `stylishi eval`).

Examples:
  python evaluate.py --index demo                                    # the offline demo
  python evaluate.py --index stylishi/fashion-product-index --sample 1000 --out eval_report
  python evaluate.py --index DIR --models patrickjohncyh/fashion-clip openai/clip-vit-base-patch32
"""
import sys

from stylishi.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
