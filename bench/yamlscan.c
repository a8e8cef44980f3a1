/*
 * yamlscan: the floor for parsing a plan file. Reads FILE with libyaml's
 * event parser and does nothing else (no nodes, no model), then prints the
 * number of events. bench/parse.sh compares `planrun validate` with it.
 *
 *   cc -O2 bench/yamlscan.c -lyaml -o bench/out/yamlscan
 *   bench/out/yamlscan plan.yaml
 */
#include <stdio.h>
#include <yaml.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 64;
    }
    FILE *file = fopen(argv[1], "rb");
    if (file == NULL) {
        perror(argv[1]);
        return 1;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fprintf(stderr, "yamlscan: cannot initialize libyaml\n");
        return 1;
    }
    yaml_parser_set_input_file(&parser, file);
    unsigned long events = 0;
    int done = 0;
    while (!done) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) {
            fprintf(stderr, "%s:%lu:%lu: error: %s\n", argv[1],
                    (unsigned long)parser.problem_mark.line + 1,
                    (unsigned long)parser.problem_mark.column + 1,
                    parser.problem ? parser.problem : "invalid YAML");
            yaml_parser_delete(&parser);
            fclose(file);
            return 2;
        }
        done = event.type == YAML_STREAM_END_EVENT;
        events++;
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    fclose(file);
    printf("%lu events\n", events);
    return 0;
}
