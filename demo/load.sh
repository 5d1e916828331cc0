#!/bin/sh
# demo/load.sh -- demo data for the quick start: person records (generated
# plus the directive fixtures), a marriage feed, a few requests of every
# directive, and one principal per role with a token in demo/tokens.txt.
# Called by run.sh on an empty database; RAVAND is the ravand command
# with its --db option.
set -e
cd "$(dirname "$0")/.."
R="${RAVAND:-build/ravand --db ravand.db}"
OUT=demo/data
mkdir -p "$OUT"
echo "demo: generating 2,000 person records"
$R records generate 2000 "$OUT/generated" --seed 1405 >/dev/null
$R records load "$OUT/generated" >/dev/null
for d in tests/fixtures/supplementary tests/fixtures/voluntary tests/fixtures/premium \
         tests/fixtures/marriage/records tests/fixtures/inquiry/records; do
  [ -d "$d" ] && $R records load "$d" >/dev/null 2>&1 || true
done
echo "demo: importing a civil-registry marriage file"
$R feed import tests/fixtures/marriage/feed-1404-12.csv >/dev/null || true
echo "demo: starting requests"
$R message supplementary-request '{"national_id": "1234567806"}' --key 1234567806 >/dev/null || true
$R start voluntary-contract '{"national_id": "0499370899", "mobile": "09120000000"}' --business-key 0499370899 >/dev/null || true
$R start premium-slip '{"national_id": "0650451252", "mobile": "09130000000", "channel": "online", "category": "self14", "wage_daily_rials": 4000000}' --business-key 0650451252 >/dev/null || true
$R start coverage-inquiry '{"national_id": "0499370899"}' --business-key 0499370899 >/dev/null || true
$R start org-onboarding '{"organisation": "bank-y", "organisation_name": "بانک نمونه", "organisation_type": "bank", "contact_mobile": "09121239999"}' >/dev/null || true
# a court with an agreement of the earlier circular that allows direct status
# inquiries (directive 002 A, clause 5: no committee review), and one such inquiry
# started here for the operator's views (the court's user sees the inquiries its
# organisation files through the API: POST /v1/instances, process status-inquiry)
$R start org-onboarding '{"organisation": "court-t", "organisation_name": "دادگستری نمونه", "organisation_type": "court", "contact_mobile": "09121238888", "legacy_agreement_no": "10391/96/1000"}' >/dev/null || true
task=$($R --json tasks list --element conclude_agreement --process org-onboarding 2>/dev/null | tr -d ' \t\n' \
       | sed -n 's/.*"id":\([0-9]*\),"instance".*/\1/p' | tail -n1)
[ -n "$task" ] && $R tasks complete "$task" '{"agreement_no": "10391-96-1000", "valid_from": "2017-12-17", "valid_to": "2030-03-20", "agreement_scope": "document_and_status"}' >/dev/null || true
$R tick >/dev/null || true
$R start status-inquiry '{"national_id": "0499370899", "organisation": "court-t", "started_by": {"role": "organisation", "principal": "court", "organisation": "court-t", "agreement": "10391-96-1000"}, "purpose": "court", "reference": "demo-1"}' --business-key 0499370899 >/dev/null || true
$R tick >/dev/null || true
$R tick >/dev/null || true
echo "demo: principals (tokens in demo/tokens.txt, shown once)"
: > demo/tokens.txt
chmod 600 demo/tokens.txt
add() {
  name=$1; shift
  if ! out=$($R principal add "$name" "$@" 2>&1); then
    case $out in *exists*) ;; *) echo "demo: principal $name not added: $out" >&2; return 0 ;; esac
  fi
  printf '%-10s %s\n' "$name" "$($R principal token "$name" | tail -n1)" >> demo/tokens.txt
}
add operator  --role operator
add analyst   --role analyst
add applicant --role applicant --national-id 1234567806
add branch    --role branch --branch "$($R --json records show 1234567806 2>/dev/null | sed -n 's/.*"branch":[[:space:]]*"\([^"]*\)".*/\1/p' | head -n1)"
# the association (kanoon) of the demo applicant's county, in Persian: scope
# values are normalised (Arabic yeh/kaf, digits, spaces), so the record's
# spelling need not match the keyboard's
county=$($R --json records show 1234567806 2>/dev/null | sed -n 's/.*"county":[[:space:]]*"\([^"]*\)".*/\1/p' | head -n1)
add kanoon    --role association --county "${county:-تهران}"
add committee --role committee
add deputy    --role committee --groups deputy
add itadmin   --role it_admin
add bank      --role organisation --organisation bank-y --agreement AG-1405/17
add court     --role organisation --organisation court-t --agreement 10391-96-1000
cat demo/tokens.txt
