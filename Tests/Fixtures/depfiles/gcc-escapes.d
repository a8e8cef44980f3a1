/tmp/w.o: w.c /usr/include/stdc-predef.h we\#ird$$name.h
/usr/include/stdc-predef.h:
we\#ird$$name.h:
