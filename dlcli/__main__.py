import sys

from dlcli import interrupts

interrupts.install()  # before the CLI's imports: a Ctrl-C while they load is a clean exit 130 too
try:
    from dlcli.cli import main
except KeyboardInterrupt:
    sys.exit(interrupts.EXIT_INTERRUPTED)

if __name__ == "__main__":
    main()
