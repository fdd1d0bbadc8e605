from .cli import exit_without_teardown, main

exit_without_teardown(main())
