# ruff: noqa: E501  (the literals are lines of the compiled main.js, as they are)
"""kinesis-mock, patched: what `fraudstream local up` runs in place of the pinned package's main.js.

kinesis-mock (npm `kinesis-local`, pinned in package-lock.json) is Scala.js output. Three changes,
each a literal of the compiled file replaced once, and only in the build whose sha256 is
KINESIS_MOCK_SHA256 (a changed pin refuses to start rather than run unpatched):

- bind address: upstream hard-codes 0.0.0.0, with no setting; the stack binds 127.0.0.1.
- PutRecords grouping (`PutRecordsRequest.putRecords`, `validRecs.groupBy((shard, records))`):
  the key held the shard's whole record Vector, so each record put hashed every record the shard
  held (Scala hashes a Vector element by element, and never caches it): a 500-record put into a
  shard of n records cost 500 * n hashes. Within one request every entry of a shard carries the
  same Vector (the one snapshot of the stream the request read), so grouping by the shard alone
  gives the same groups; the patch does that, and appends each group's records to that Vector
  as before (same order, same sequence numbers).
- GetRecords with an AFTER_SEQUENCE_NUMBER iterator (`data.indexWhere(_.sequenceNumber == seq)`):
  scanned the shard from its oldest record, so each poll of a consumer that keeps up cost the whole
  shard. Sequence numbers are unique within a shard, so searching from the newest record back finds
  the same index, after only the records the consumer has not read yet.

Records are still never trimmed (kinesis-mock does not enforce retention): memory grows with
what was put (docs/performance.md, "A stand-in that takes production rates").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from consumer.errors import FraudstreamError

# sha256 of node_modules/kinesis-local/main.js, kinesis-local 0.6.2 (package-lock.json).
KINESIS_MOCK_SHA256 = "6d46874682bffd8c06a3ca90735e292d144626541d1450bc43326557b3dda414"


class KinesisPatchError(FraudstreamError, RuntimeError):
    """The kinesis-mock build is not the one the patch was written for."""


@dataclass(frozen=True)
class Patch:
    name: str
    original: str
    replacement: str


def _bind(host: str) -> Patch:
    return Patch("bind address", '.em("0.0.0.0")', f'.em("{host}")')


PUT_RECORDS_GROUPING = Patch(
    "PutRecords grouping",
    """\
          var m = $m_scm_Map$().aE();
          var it = validRecs$2.q();
          while (it.r()) {
            var elem = it.o();
            matchResult9$1: {
              var key;
              if ((elem !== null)) {
                var key = $ct_T2__O__O__(new $c_T2(), elem.ev, elem.e2);
                break matchResult9$1;
              }
              throw new $c_s_MatchError(elem);
            }
            m.za(key, new $c_sr_AbstractFunction0_$$Lambda$07eded5776954a9c145e92c329afd52873ad179c((() => {
              $m_sci_Vector$();
              return new $c_sci_VectorBuilder();
            }))).aH(elem);
          }
          var result = $m_sci_HashMap$().Fv;
          var mapIt = m.q();
          while (mapIt.r()) {
            var x1 = mapIt.o();
            if ((x1 === null)) {
              throw new $c_s_MatchError(x1);
            }
            var k = x1.m();
            var v = x1.n();
            result = result.CS(k, v.aP());
          }
          var this$40 = result;
          $m_sci_HashMap$();
          var b$8 = new $c_sci_HashMapBuilder();
          var it$1 = this$40.q();
          while (it$1.r()) {
            var x0 = it$1.o();
            matchResult10: {
              var elem$1___1;
              var elem$1___2;
              if ((x0 !== null)) {
                var x28 = x0.m();
                if ((x28 !== null)) {
                  var elem$1___1 = x28.m();
                  var elem$1___2 = x28.n().w1(x0.n().al(new $c_sjsr_AnonFunction1_$$Lambda$412915ce24663401f4bc24349a746e1dbd693dc1(((_$4) => _$4.dO))));
                  break matchResult10;
                }
              }
              throw new $c_s_MatchError(x0);
            }
            $p_sci_HashMapBuilder__ensureUnaliased__V(b$8);
            var h = $m_sr_Statics$().E(elem$1___1);
            var im = $m_sc_Hashing$().b4(h);
            b$8.GQ(b$8.tq, elem$1___1, elem$1___2, h, im, 0);
          }
          var newShards = b$8.a7c();
""",
    """\
          // fraudstream: grouped by shard alone (consumer/local/kinesis_patch.py)
          var m = $m_scm_Map$().aE();
          var it = validRecs$2.q();
          while (it.r()) {
            var elem = it.o();
            if ((elem === null)) {
              throw new $c_s_MatchError(elem);
            }
            m.za(elem.ev, new $c_sr_AbstractFunction0_$$Lambda$07eded5776954a9c145e92c329afd52873ad179c((() => {
              $m_sci_Vector$();
              return $ct_T2__O__O__(new $c_T2(), elem.e2, new $c_sci_VectorBuilder());
            }))).n().aH(elem.dO);
          }
          $m_sci_HashMap$();
          var b$8 = new $c_sci_HashMapBuilder();
          var mapIt = m.q();
          while (mapIt.r()) {
            var x1 = mapIt.o();
            var elem$1___1 = x1.m();
            var group = x1.n();
            var elem$1___2 = group.m().w1(group.n().aP());
            $p_sci_HashMapBuilder__ensureUnaliased__V(b$8);
            var h = $m_sr_Statics$().E(elem$1___1);
            var im = $m_sc_Hashing$().b4(h);
            b$8.GQ(b$8.tq, elem$1___1, elem$1___2, h, im, 0);
          }
          var newShards = b$8.a7c();
""",
)

GET_RECORDS_SEEK = Patch(
    "GetRecords seek",
    """\
                    var this$25 = data.q();
                    _return: {
                      var i = 0;
                      var dropped = this$25.f0(0);
                      while (dropped.r()) {
                        var x0 = dropped.o();
                        var x$6 = x0.lh;
                        var x$2$2 = b.EH;
                        if (((x$6 === null) ? (x$2$2 === null) : x$6.b(x$2$2))) {
                          var x14 = i;
                          break _return;
                        }
                        i = ((1 + i) | 0);
                      }
                      var x14 = (-1);
                    }
""",
    """\
                    // fraudstream: searched from the newest back (consumer/local/kinesis_patch.py)
                    _return: {
                      var i = ((data.y() - 1) | 0);
                      while ((i >= 0)) {
                        var x$6 = data.R(i).lh;
                        var x$2$2 = b.EH;
                        if (((x$6 === null) ? (x$2$2 === null) : x$6.b(x$2$2))) {
                          var x14 = i;
                          break _return;
                        }
                        i = ((i - 1) | 0);
                      }
                      var x14 = (-1);
                    }
""",
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def patches(bind_host: str) -> tuple[Patch, ...]:
    return (_bind(bind_host), PUT_RECORDS_GROUPING, GET_RECORDS_SEEK)


def patch_kinesis_mock(original: bytes, bind_host: str, source: str = "main.js") -> str:
    """The patched main.js, from the pinned build's bytes; refuses any other build."""
    digest = sha256(original)
    if digest != KINESIS_MOCK_SHA256:
        raise KinesisPatchError(
            f"kinesis-mock at {source} is not the pinned build (sha256 {digest}, expected "
            f"{KINESIS_MOCK_SHA256}): run scripts/setup.sh to reinstall the pinned kinesis-local, "
            "or, after changing the pin, re-check consumer/local/kinesis_patch.py against the new "
            "build and update its literals and KINESIS_MOCK_SHA256"
        )
    script = original.decode("utf-8")
    for patch in patches(bind_host):
        found = script.count(patch.original)
        if found != 1:
            raise KinesisPatchError(
                f"kinesis-mock at {source}: {patch.name} found {found} times, expected once"
            )
        script = script.replace(patch.original, patch.replacement)
    return script
