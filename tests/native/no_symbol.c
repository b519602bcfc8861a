/*
 * no_symbol.c - a valid shared library that does not export handle_request;
 * loading it as a handler must fail with a log line naming the symbol.
 */
int not_handle_request(void);

int not_handle_request(void)
{
    return 42;
}
