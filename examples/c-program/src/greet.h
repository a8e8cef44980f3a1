#ifndef GREET_H
#define GREET_H

/* Writes "hello, NAME!" followed by a newline to standard output. */
void greet(const char *name);

#endif
