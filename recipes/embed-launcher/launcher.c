/*
 * A native launcher that embeds CPython by linking libpython3.11.so.
 *
 * It lives in <bundle>/bin/ and finds libpython through the RPATH
 * $ORIGIN/../python/runtime/lib, so the bundle can be moved anywhere.
 * PYTHONHOME is derived from the executable's own path (/proc/self/exe),
 * never from the environment, and user site-packages are disabled.
 *
 *   launcher --smoke-python   runs one line of Python and prints its result
 *   launcher [python args...] behaves like the python command line (-c, -m, script)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int bundle_home(char *out, size_t size) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) {
        perror("launcher: readlink /proc/self/exe");
        return -1;
    }
    exe[n] = '\0';
    /* <bundle>/bin/launcher -> <bundle>/python/runtime */
    char *bin = dirname(exe);
    char *bundle = dirname(bin);
    if ((size_t)snprintf(out, size, "%s/python/runtime", bundle) >= size) {
        fprintf(stderr, "launcher: bundle path too long\n");
        return -1;
    }
    return 0;
}

static int init_python(int argc, char **argv, int parse_argv) {
    char home[PATH_MAX];
    if (bundle_home(home, sizeof home) != 0) {
        return -1;
    }
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config); /* ignores PYTHON* env, no user site */
    config.parse_argv = parse_argv;
    PyStatus status = PyConfig_SetBytesString(&config, &config.home, home);
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesArgv(&config, argc, argv);
    }
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        Py_ExitStatusException(status);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--smoke-python") == 0) {
        if (init_python(argc, argv, 0) != 0) {
            return 2;
        }
        int rc = PyRun_SimpleString(
            "import sys, json\n"
            "assert sys.prefix.endswith('/python/runtime'), sys.prefix\n"
            "print('smoke-python ok', sys.version.split()[0], json.dumps(6 * 7))\n");
        if (Py_FinalizeEx() < 0) {
            return 120;
        }
        return rc == 0 ? 0 : 1;
    }
    if (init_python(argc, argv, 1) != 0) {
        return 2;
    }
    return Py_RunMain(); /* finalizes the interpreter */
}
