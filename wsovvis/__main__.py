import sys

try:
    from wsovvis.cli import main

    code = main()
except KeyboardInterrupt:  # Ctrl-C before the command's own error boundary (while importing)
    print("interrupted", file=sys.stderr)
    code = 130
sys.exit(code)
