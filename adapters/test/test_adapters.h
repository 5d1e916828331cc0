/* adapters/test/test_adapters.h -- inspection of the built-in sms recorder. */
#ifndef RV_TEST_ADAPTERS_H
#define RV_TEST_ADAPTERS_H
int         rv_test_sms_count(void);
const char *rv_test_sms_text(int i);
const char *rv_test_sms_to(int i);
void        rv_test_sms_reset(void);
#endif
