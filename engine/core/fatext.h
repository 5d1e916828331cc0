/*
** core/fatext.h -- Persian text as an authorization scope value.
**
** Branch, county, organisation and agreement names are compared byte for
** byte in SQL (t.county = p.county). Persian text has several spellings
** that look the same: Arabic yeh/kaf against Persian yeh/keheh, three sets
** of digits, odd spaces. Both sides of every scope comparison go through
** rv_fa_normalize() when they are written (the principal by `ravand
** principal add`, the task's branch/county by the runtime), so «تهران»
** typed with an Arabic keyboard and «تهران» from the registry match.
**
** Normal form:
**   U+064A ARABIC YEH, U+0649 ALEF MAKSURA  -> U+06CC FARSI YEH
**   U+0643 ARABIC KAF                       -> U+06A9 KEHEH
**   U+0660..0669, U+06F0..06F9 (digits)     -> '0'..'9'
**   whitespace (ASCII, NBSP, U+2000..200A, U+202F, U+205F, U+3000): runs
**   collapse to one ' ', none at either end.
** Nothing else changes (no NFC/NFKC: presentation forms stay as they are).
** The normal form is never longer than the input.
*/
#ifndef RV_CORE_FATEXT_H
#define RV_CORE_FATEXT_H
#include <stdbool.h>
#include <stddef.h>
#include "core/err.h"

#define RV_FA_SCOPE_CPS 64      /* a scope value has 1..64 code points */

/* Normalise s into out (cap bytes with the NUL). RV_INVALID with a reason
** when s is not well-formed UTF-8 (truncated, overlong, surrogate, past
** U+10FFFF) or the result does not fit. Does not judge the characters. */
rv_status rv_fa_normalize(const char *s, char *out, size_t cap, rv_err *err);

/* True when s (already normal) is a scope value: valid UTF-8, 1..64 code
** points, each a letter or digit (ASCII, Latin, Greek, Cyrillic, Arabic
** and Persian incl. presentation forms and marks), '.', '_', '-', a space
** inside, a ZWNJ (U+200C) between two letters, or '/' when allow_slash.
** No control, format or bidi characters. */
bool rv_fa_scope_ok(const char *s, bool allow_slash);

/* Normalise s into out, then check it is a scope value (reason in err). */
rv_status rv_fa_scope(const char *s, bool allow_slash, char *out, size_t cap, rv_err *err);

/* A normalised copy for values the engine writes (rv_free it). NULL stays
** NULL; text that is not UTF-8 is copied unchanged (it can match no
** principal, whose values are checked). */
char *rv_fa_normdup(const char *s);

#endif
