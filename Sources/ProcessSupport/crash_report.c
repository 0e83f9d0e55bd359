#include "process_support.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

/* The recorded calls, innermost last, per calling thread: inference lanes call plugins from
 * several threads at once. Nesting happens when a searcher's callback into the host runs a SAM
 * plugin. A plugin's work may also run on pool threads (`parallel_for`) that never entered a
 * call themselves: a crash there is attributed to the most recently entered call of any thread
 * still running (`latest`, `running` counts them). */
#define MAX_DEPTH 8
typedef struct { const char *plugin, *function, *site; } call_t;
static _Thread_local call_t calls[MAX_DEPTH];
static _Thread_local int depth;
static call_t latest;
static int running; /* calls entered and not left, over all threads (atomic) */
static char crash_note[256];

void lth4sa_crash_enter(const char *plugin, const char *function, const char *site) {
    const call_t call = {plugin, function, site};
    if (depth < MAX_DEPTH) calls[depth] = call;
    depth++;
    latest = call; /* a racy copy is harmless: it only names a call in a crash report */
    __atomic_add_fetch(&running, 1, __ATOMIC_RELAXED);
}

void lth4sa_crash_leave(void) {
    if (depth > 0) depth--;
    __atomic_sub_fetch(&running, 1, __ATOMIC_RELAXED);
}

static void put(const char *text) {
    if (text) (void)!write(STDERR_FILENO, text, strlen(text));
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "a fatal signal";
    }
}

/* Async-signal-safe: write(2) only, then the default action. */
static void on_fatal_signal(int sig) {
    const int top = (depth > MAX_DEPTH ? MAX_DEPTH : depth) - 1;
    const call_t current = top >= 0 ? calls[top] : (__atomic_load_n(&running, __ATOMIC_RELAXED) > 0 ? latest : (call_t){0, 0, 0});
    if (current.plugin) {
        const char *current_plugin = current.plugin, *current_function = current.function, *current_site = current.site;
        put("\nlth4sa: plugin ");
        put(current_plugin);
        put(" crashed with ");
        put(signal_name(sig));
        put(" in ");
        put(current_function);
        if (current_site && current_site[0]) {
            put(" at ");
            put(current_site);
        }
        if (crash_note[0]) {
            put("; ");
            put(crash_note);
        }
        put("\n");
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

int lth4sa_crash_install(const char *note) {
    strncpy(crash_note, note ? note : "", sizeof crash_note - 1);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_fatal_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_NODEFER;
    const int signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
    return 0;
}
