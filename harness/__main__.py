from harness.cli import main

if __name__ == "__main__":  # a worker process (forkserver, spawn) may import this module: only a run as a program starts the CLI
    raise SystemExit(main())
